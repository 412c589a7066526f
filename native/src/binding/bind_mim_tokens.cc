#include "bindings.h"
namespace cloze {
void register_mim_tokens(Napi::Env env, Napi::Object exports) { (void)env; (void)exports; }
}  // namespace cloze
