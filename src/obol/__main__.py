from obol.cli import main

main()
