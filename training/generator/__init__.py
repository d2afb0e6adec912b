"""Few-step image generator for avgas-live (issue 6): latent autoencoder, flow-matching teacher
with classifier-free guidance, reflow-distilled student, retrieval mode, mixed images."""
