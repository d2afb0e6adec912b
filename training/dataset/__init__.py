"""avgas-live dataset tooling: builds a paired audio/image dataset from Debian packages.

Modules:
  readers   - Qt .rcc and OpenTTD .cat container readers
  audio     - decoding, resampling to 16 kHz mono, WAV writing (deterministic)
  debs      - apt-get download + selective extraction with a cache
  build     - the `make dataset` pipeline (python -m training.dataset.build)
  loaders   - API for training code: manifest, clips, images, augmentation, mixtures
  make_demo - the 30 s demo soundscape in Assets/demo
"""
