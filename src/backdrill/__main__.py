from backdrill.cli.app import run

run()
