"""Run any plugin or built-in RecBole model through one pipeline.

    python run/run.py --model=GRU4RecPlus --dataset=ml-100k [--config_files=a.yaml,b.yaml] [--key=value ...]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

EPILOG = """Any other --key=value sets that RecBole or model option, overriding the YAML files, e.g.
  --epochs=5 --loss=cross-entropy --layers=[200] --n_sample=2048 --train_batch_size=64
Precedence: RecBole defaults < plugin properties/ < --config_files < --key=value.
Defaults of each plugin model: properties/model/<MODEL>.yaml."""


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="GRU4RecPlus", help="model class name, plugin or RecBole (default GRU4RecPlus)")
    parser.add_argument("--dataset", default="ml-100k", help="dataset name under data_path (default ml-100k, shipped with RecBole)")
    parser.add_argument("--config_files", default="", help="comma-separated YAML files, later ones win")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--no_save", action="store_true", help="do not write checkpoints to checkpoint_dir")
    args, extra = parser.parse_known_args(argv)
    options = {}
    for item in extra:
        key, sep, value = item[2:].partition("=") if item.startswith("--") else ("", "", "")
        if not key or not sep:
            parser.error(f"unrecognised argument '{item}': options are --key=value")
        options[key] = value
    if args.threads is not None:
        options["threads"] = args.threads
    config_files = [path for path in args.config_files.split(",") if path]
    return args, config_files, options


def main(argv=None):
    args, config_files, options = parse_args(sys.argv[1:] if argv is None else argv)
    from recbole_gru4rec_plus import PluginError
    from recbole_gru4rec_plus.quick_start import run

    try:
        result = run(args.model, args.dataset, config_files, options, saved=not args.no_save)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"best valid: {dict(result['best_valid_result'] or {})}")
    print(f"test: {dict(result['test_result'] or {})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
