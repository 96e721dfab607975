from anemll_spec.cli import main

raise SystemExit(main())
