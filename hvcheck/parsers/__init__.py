"""Pure parsers: text in, typed data out. No I/O happens in this package."""
