"""The networks: `dcgan32` (MNIST/SVHN) and `resnet64` (LSUN) generators and critics,
`classifiers` (the evaluators and DGR's solver), and `factory` (a run's models from its
configuration)."""
