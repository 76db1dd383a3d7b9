"""Import a session log as RecBole benchmark files, by the GRU4Rec papers' (or HRNN's session-aware) protocol.

    python run/import_sessions.py --input FILE [--test-input FILE] --name NAME [--data-path dataset/]
        [--format gru4rec|diginetica|user-sessions] [--protocol session|session-aware]
        [--test-days D] [--valid-days D] [--collapse-repeats] [--min-item-support 5]
        [--min-session-length 2] [--min-user-sessions 3] [--session-gap 1800] [--max-history 50]
        [--layout prefix|events] [--overwrite]
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

EPILOG = """Protocol: optional collapse of repeated items, then drop items with fewer than
--min-item-support events and sessions shorter than --min-session-length until nothing changes;
sessions starting in the last --test-days days are the test set, the same again on the rest for
validation; test/validation events of items unseen in training are dropped, then sessions shorter
than 2. With --test-input the test set is that file (--test-days does not apply).
Formats: gru4rec = tab-separated SessionId ItemId Time (seconds) with a header;
diginetica = DIGINETICA's ';'-separated train-item-views.csv;
user-sessions = tab-separated UserId SessionId ItemId Time (SessionId optional: sessions then end
after --session-gap idle seconds), imported by the session-aware protocol (HRNN's): items with
fewer than --min-item-support events, sessions shorter than --min-session-length and users with
fewer than --min-user-sessions sessions are dropped until nothing changes; each user's last
session is the test set, the one before validation; their items unseen in training are dropped,
then their sessions shorter than 2. Each row holds the user's whole earlier history."""


class OneLineErrors(argparse.ArgumentParser):
    """Command-line mistakes as one 'error:' line (argparse prints its usage first)."""

    def error(self, message):
        self.exit(2, f"error: {message}; see python run/import_sessions.py --help\n")


def parse_args(argv):
    parser = OneLineErrors(description=__doc__.strip().splitlines()[0], epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, help="the event log (or the training log with --test-input)")
    parser.add_argument("--test-input", help="an already split test log in the same format")
    parser.add_argument("--name", required=True, help="dataset name: files go to DATA_PATH/NAME/NAME.*")
    parser.add_argument("--data-path", default="dataset/", help="folder holding the datasets (default dataset/)")
    parser.add_argument("--format", choices=["gru4rec", "diginetica", "user-sessions"], default="gru4rec", help="input format")
    parser.add_argument("--protocol", choices=["session", "session-aware"], default=None,
                        help="session = the GRU4Rec papers' time split (gru4rec, diginetica); session-aware = each "
                             "user's last session is test (user-sessions); default: the format's")
    parser.add_argument("--min-user-sessions", type=int, default=3, help="session-aware: drop users with fewer sessions (default 3)")
    parser.add_argument("--session-gap", type=float, default=1800.0,
                        help="user-sessions without SessionId: idle seconds that end a session (default 1800)")
    parser.add_argument("--test-days", type=float, default=None, help="sessions starting in the last D days are test (default 1)")
    parser.add_argument("--valid-days", type=float, default=None,
                        help="the same for validation, off the training part (default: test days, or 1 with "
                             "--test-input); 0 = no validation split, the test set validates")
    parser.add_argument("--collapse-repeats", action="store_true", help="drop an event repeating the previous item of its session")
    parser.add_argument("--min-item-support", type=int, default=5, help="drop items with fewer events (default 5)")
    parser.add_argument("--min-session-length", type=int, default=2, help="drop shorter sessions (default 2)")
    parser.add_argument("--max-history", type=int, default=50, help="most recent items per row (MAX_ITEM_LIST_LENGTH, default 50)")
    parser.add_argument("--layout", choices=["prefix", "events"], default="prefix",
                        help="prefix: a row per target with its history (default); events: the plain events, the "
                             "rows built at load time (for logs of millions of events; see the README)")
    parser.add_argument("--overwrite", action="store_true", help="replace the files of an existing dataset NAME")
    return parser.parse_args(argv)


def import_sessions(args):
    """Read, apply the protocol, write; return (splits, written paths, notes)."""
    from recbole_gru4rec_plus.data import session_import as si
    from recbole_gru4rec_plus.errors import PluginError

    si.check_dataset_name(args.name)
    if args.max_history < 1:
        raise PluginError(f"--max-history must be at least 1, got {args.max_history}")
    if args.min_item_support < 1 or args.min_session_length < 2:
        raise PluginError("--min-item-support must be >= 1 and --min-session-length >= 2 (a target needs a previous event)")
    protocol = args.protocol or ("session-aware" if args.format == "user-sessions" else "session")
    if (protocol == "session-aware") != (args.format == "user-sessions"):
        raise PluginError(f"--protocol {protocol} does not apply to --format {args.format}: the session-aware protocol "
                          f"needs users (--format user-sessions), the session protocol takes gru4rec or diginetica")
    if protocol == "session-aware":
        if args.layout != "prefix":
            raise PluginError("--layout events applies to the session protocol only (the session-aware files hold each "
                              "user's history per row): drop --layout")
        return import_user_sessions(args)
    read = si.READERS[args.format]
    options = dict(min_item_support=args.min_item_support, min_session_length=args.min_session_length,
                   collapse_repeats=args.collapse_repeats)
    notes = []
    if args.test_input:
        if args.test_days is not None:
            raise PluginError("--test-days does not apply with --test-input (the test file is the test set): drop one")
        valid_days = 1.0 if args.valid_days is None else args.valid_days
        splits = si.apply_presplit_protocol(read(args.input), read(args.test_input), valid_days, **options)
        source = f"{args.format} files {args.input} (train) and {args.test_input} (test)"
    else:
        test_days = 1.0 if args.test_days is None else args.test_days
        valid_days = test_days if args.valid_days is None else args.valid_days
        splits = si.apply_session_protocol(read(args.input), test_days, valid_days, **options)
        source = f"{args.format} file {args.input}, test = sessions starting in the last {test_days:g} day(s)"
    validation = (f"validation = the last {valid_days:g} day(s) of training" if valid_days
                  else "no validation split (--valid-days 0): the test set is used for validation too")
    if not valid_days:
        notes.append(validation)
    comments = [f"source: {source}; {validation}",
                f"min_item_support={args.min_item_support} min_session_length={args.min_session_length} "
                f"collapse_repeats={args.collapse_repeats} max_history={args.max_history} layout={args.layout}"]
    paths = si.write_benchmark_files(splits, args.data_path, args.name, args.max_history, args.overwrite, comments,
                                     layout=si.LAYOUTS[args.layout])
    return splits, paths, notes


def import_user_sessions(args):
    """The session-aware protocol: read, filter, split each user's last sessions off, write."""
    from recbole_gru4rec_plus.data import session_aware as sa
    from recbole_gru4rec_plus.data import session_import as si
    from recbole_gru4rec_plus.errors import PluginError

    for flag in ("test_input", "test_days", "valid_days"):
        if getattr(args, flag) is not None:
            raise PluginError(f"--{flag.replace('_', '-')} does not apply to the session-aware protocol (each user's "
                              f"last session is test, the one before validation): drop it")
    splits = sa.apply_session_aware_protocol(sa.read_user_sessions_tsv(args.input, args.session_gap),
                                             args.min_item_support, args.min_session_length, args.min_user_sessions,
                                             args.collapse_repeats)
    comments = [f"source: user-sessions file {args.input}; session-aware protocol: each user's last session is "
                f"test, the one before validation",
                f"min_item_support={args.min_item_support} min_session_length={args.min_session_length} "
                f"min_user_sessions={args.min_user_sessions} collapse_repeats={args.collapse_repeats} "
                f"max_history={args.max_history}"]
    paths = si.write_benchmark_files(splits, args.data_path, args.name, args.max_history, args.overwrite, comments,
                                     layout=sa.USER_SESSION_LAYOUT)
    return splits, paths, []


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from recbole_gru4rec_plus.data.session_import import split_summary
    from recbole_gru4rec_plus.errors import PluginError

    try:
        splits, paths, notes = import_sessions(args)
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing was changed (an import replaces a dataset only once all its files are written)",
              file=sys.stderr)
        return 130
    summary = split_summary(splits)
    columns = list(next(iter(summary.values())))
    print(f"{'split':<6} " + " ".join(f"{column:>9}" for column in columns))
    for name, row in summary.items():
        print(f"{name:<6} " + " ".join(f"{row[column]:>9}" for column in columns))
    for note in notes:
        print(f"note: {note}")
    print("wrote:")
    for path in paths:
        print(f"  {path}")
    print("next:")
    models = ("HRNN", "GRU4RecPlus") if "user_id" in splits["train"] else ("GRU4RecPlus",)
    for model in models:
        print(f"  python run/run.py --model={model} --dataset={args.name} --config_files={paths[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
