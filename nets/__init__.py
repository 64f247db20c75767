"""Networks built on slimnorm: tf-slim style graph code for TF 2.21.

- `nets.inception_v2`: Inception V2 with the variables of slim's public
  checkpoint `inception_v2_2016_08_28`.
- `nets.small_convnet`: a five-layer CNN for 8x8 to 32x32 images.
- `nets.nets_factory.get_network_fn`: a network by name, inside its arg scope.
- `nets.normalizers`: the `normalizer=` switch shared by all of them.
- `nets.inception_eval`: predictions of a slim Inception V2 checkpoint.
"""
