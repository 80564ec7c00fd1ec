from inventory_sync.cli.main import main

main()
