#include "bindings.h"
namespace cloze {
void register_sparse(Napi::Env env, Napi::Object exports) { (void)env; (void)exports; }
}  // namespace cloze
