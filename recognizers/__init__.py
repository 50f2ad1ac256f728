"""Our recognizers: declarative YAML rules, the named validators they use, and the loader that compiles them."""
