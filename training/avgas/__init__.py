"""AV-GAS separator side (issue 5): visual embedding space, audio features, separator,
no-separator ablation, image judge, export and evaluation. See training/reports/separator.md."""
