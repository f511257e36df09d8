"""Planning: a suite command (built-in suite or TOML file, options, filters) becomes checked run specs."""
