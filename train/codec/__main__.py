from autosong.codec_cli import main

raise SystemExit(main())
