from spg_core.cli import main

raise SystemExit(main())
