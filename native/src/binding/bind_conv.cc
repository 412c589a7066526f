#include "bindings.h"
namespace cloze {
void register_conv(Napi::Env env, Napi::Object exports) { (void)env; (void)exports; }
}  // namespace cloze
