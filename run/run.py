"""Run any plugin or built-in RecBole model through one pipeline.

    python run/run.py --model=GRU4RecPlus --dataset=ml-100k [--config_files=a.yaml,b.yaml] [--key=value ...]
    python run/run.py --resume=saved/RUN-last.pth [--epochs=N]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

EPILOG = """Any other --key=value sets that RecBole or model option, overriding the YAML files, e.g.
  --epochs=5 --loss=cross-entropy --layers=[200] --n_sample=2048 --train_batch_size=64
Precedence: RecBole defaults < plugin properties/ < --config_files < --key=value.
Defaults of each plugin model: properties/model/<MODEL>.yaml. The original GRU4Rec's published
settings: --config_files=paper/gru4rec_<dataset>.yaml (rsc15, yoochoose, rees46, coveo,
retailrocket, diginetica).
Every run has an id; its log (log/), TensorBoard folder and checkpoints (saved/) carry it. After
each epoch it keeps a -last.pth checkpoint: --resume=that file continues the run exactly."""


class OneLineErrors(argparse.ArgumentParser):
    """Command-line mistakes as one 'error:' line (argparse prints its usage first)."""

    def error(self, message):
        self.exit(2, f"error: {message}; see python run/run.py --help\n")


def parse_args(argv):
    parser = OneLineErrors(description=__doc__.strip().splitlines()[0], epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="GRU4RecPlus", help="model class name, plugin or RecBole (default GRU4RecPlus)")
    parser.add_argument("--dataset", default="ml-100k", help="dataset name under data_path (default ml-100k, shipped with RecBole)")
    parser.add_argument("--config_files", default="", help="comma-separated YAML files, later ones win")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own choice)")
    parser.add_argument("--no_save", action="store_true", help="do not write checkpoints to checkpoint_dir")
    parser.add_argument("--resume", metavar="PATH", help="continue the run that wrote this -last.pth checkpoint")
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
    if args.resume and (config_files or args.no_save or {"--model", "--dataset"} & {a.split("=")[0] for a in argv}):
        parser.error("--resume continues a run as it was configured: give only --epochs (and --threads) with it")
    return args, config_files, options


def main(argv=None):
    args, config_files, options = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        from recbole_gru4rec_plus import PluginError
        from recbole_gru4rec_plus.errors import RunInterrupted
        from recbole_gru4rec_plus.quick_start import run

        result = run(args.model, args.dataset, config_files, options, saved=not args.no_save, resume=args.resume)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RunInterrupted as interrupted:
        print(str(interrupted), file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted before training started: nothing was written to resume from", file=sys.stderr)
        return 130
    print(f"best valid: {dict(result['best_valid_result'] or {})}")
    print(f"test: {dict(result['test_result'] or {})}")
    print(f"run {result['run_id']}: log {result['log_file']}")
    if result["stopped_by"] == "patience":  # resuming would stop again at once: early stopping has decided
        print(f"early stopping ended training after epoch {result['epochs_trained'] - 1} (best: epoch "
              f"{result['best_epoch']}); to let a run go on longer without gain, start it again with a larger "
              f"--stopping_step")
    elif result["last_checkpoint_file"]:  # the epoch limit ended it: more epochs continue it exactly
        print(f"to train further: python run/run.py --resume={result['last_checkpoint_file']} "
              f"--epochs={result['epochs'] + 10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
