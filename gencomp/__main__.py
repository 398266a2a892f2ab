from gencomp.cli import main

raise SystemExit(main())
