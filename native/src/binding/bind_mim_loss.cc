#include "bindings.h"
namespace cloze {
void register_mim_loss(Napi::Env env, Napi::Object exports) { (void)env; (void)exports; }
}  // namespace cloze
