from inventory_sync.cli import main

main()
