"""Run a leaderboard experiment: models x datasets x seeds, resumable, with intervals, tests and a plot.

    python run/leaderboard.py experiments/ml-100k.yaml [--output DIR] [--executor local|ray]
        [--address RAY_ADDRESS] [--workers N] [--keep-checkpoints] [--no-run] [--labels A,B]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

EPILOG = """Each finished cell (dataset, model label, seed) is one file in DIR/cells/, keyed by a hash of its
resolved config: run the command again to resume after an interruption (finished cells are not
run again; a changed option makes a new cell). The board is DIR/leaderboard.md, .csv and .png.
DIR defaults to leaderboards/<experiment name>. The experiment file's keys: README, "Leaderboards"."""


class OneLineErrors(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"error: {message}; see python run/leaderboard.py --help\n")


def main(argv=None):
    parser = OneLineErrors(description=__doc__.strip().splitlines()[0], epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", help="the experiment YAML file")
    parser.add_argument("--output", help="output folder (default leaderboards/<name>)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local", help="one cell after another, or Ray tasks")
    parser.add_argument("--address", help="an existing Ray cluster's address (default: a local Ray)")
    parser.add_argument("--workers", type=int, help="Ray workers (default: the CPUs Ray sees)")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep each cell's checkpoints in DIR/checkpoints")
    parser.add_argument("--no-run", action="store_true", help="write the board from the cells in DIR, run none")
    parser.add_argument("--labels", help="run only these model labels, comma-separated (the board shows all)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    try:
        from recbole_gru4rec_plus import PluginError
        from recbole_gru4rec_plus.leaderboard.runner import run_experiment

        experiment, board, counts = run_experiment(args.experiment, args.output, args.executor, args.address,
                                                   args.workers, args.keep_checkpoints,
                                                   report=lambda line: print(line, flush=True), run=not args.no_run,
                                                   labels=[x for x in (args.labels or "").split(",") if x] or None)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells are kept; run the same command again to go on", file=sys.stderr)
        return 130
    output = args.output or os.path.join("leaderboards", experiment.name)
    print(f"board: {os.path.join(output, 'leaderboard.md')} (.csv, .png); {counts['ran']} of {counts['cells']} cells run "
          f"now, {counts['failed']} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
