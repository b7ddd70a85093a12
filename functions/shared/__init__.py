"""Code shared by the functions and the operator tasks; the build packs it into every zip."""
