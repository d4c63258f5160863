from keadm.main import main

raise SystemExit(main())
