from zoodeploy.cli.app import main

main()
