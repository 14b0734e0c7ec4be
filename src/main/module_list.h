// Hands the built-in module list to the configuration layer.
#pragma once

namespace weir {

void use_builtin_modules();

}  // namespace weir
