"""`python -m fanstack.cli`."""

from fanstack.cli import main

main()
