from icecube_stream.cli import main

main()
