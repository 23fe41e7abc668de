"""``python -m loupe sync DIR``."""

import sys


def main() -> int:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m loupe sync DIR [DIR...] [--server URL] [--token TOKEN]")
        print("  upload what a run directory's spool holds that the server has not acknowledged, once")
        return 0 if args else 2
    if args[0] != "sync":
        print("loupe: unknown command %r (commands: sync)" % args[0], file=sys.stderr)
        return 2
    from .sync import main as sync_main

    return sync_main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
