from fastsr.cli import main

raise SystemExit(main())
