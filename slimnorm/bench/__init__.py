"""Benchmarks and paper experiments (they import TensorFlow; `import slimnorm` does not).

- `run` (`slimnorm bench norms`): normalisation ops and Inception V2 steps, timed
  as ratios to TensorFlow's fused batch norm in the same process; its cases
  are in `ops` and `networks`, its timing in `harness`, its tables in
  `report`;
- `session_config` (`slimnorm bench config`): oneDNN and thread-pool settings;
- `exp_bn_speedup`, `exp_gn_batch_size` (`slimnorm exp bn-speedup`,
  `slimnorm exp gn-batch-size`): the BN and GN papers' experiments, on the
  runner of `experiments`.
"""
