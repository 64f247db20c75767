"""Export a nets_factory network for inference (frozen GraphDef, SavedModel).

    python scripts/export_inference_graph.py --model_name small_convnet \\
        --dataset_name digits --image_size 8 --num_channels 1 \\
        --checkpoint_path runs/digits --fold_batch_norms \\
        --output_file out/digits_frozen.pb --saved_model_dir out/digits_sm

Same flags as `slimnorm export`; see
--help and slimnorm/export/cli.py.
"""
import sys

from slimnorm.export.cli import export_main

if __name__ == '__main__':
    sys.exit(export_main(prog='export_inference_graph.py'))
