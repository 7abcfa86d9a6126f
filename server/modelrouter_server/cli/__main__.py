"""`python -m modelrouter_server.cli`, the same as the `modelrouter` command."""

from modelrouter_server.cli import main

raise SystemExit(main())
