from mindwell.cli import main

main()
