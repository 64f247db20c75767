"""The training loop, evaluation and run configuration behind `slimnorm train` / `slimnorm eval`.

- `slimnorm.train.config`: what a run is (TensorFlow-free): the configs and
  their checks, the run_config.json written beside the checkpoints;
- `slimnorm.train.inputs`: the batch a graph is built on: in-memory sets
  fed through feed_dict, or slim-format TFRecords through tf.data;
- `slimnorm.train.warm_start`: fine-tuning from a checkpoint (slim's
  --checkpoint_path, --checkpoint_exclude_scopes, --trainable_scopes);
- `slimnorm.train.loop`: the Session training loop (resume, signals,
  checkpoints, summaries);
- `slimnorm.train.evaluation`: accuracy of a checkpoint, and watching a
  training directory;
- `slimnorm.train.clones`: the network cloned on several devices of one
  process (research/slim's model_deploy);
- `slimnorm.train.cluster`, `slimnorm.train.distributed`: a ps/worker
  cluster on TensorFlow's gRPC runtime (hosts, TF_CONFIG, time-outs, one
  task's training); `slimnorm.train.local_cluster`: such a cluster started
  on 127.0.0.1.

- `slimnorm.train.train_op`: the graph helpers a training loop is built
  from (`create_train_op`, `check_update_ops`, `make_saver`,
  `variables_to_restore`), which slim users call from their own loops as
  `slimnorm.training` (an alias of this module).
"""
