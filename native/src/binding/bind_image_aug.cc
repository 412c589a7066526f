#include "bindings.h"
namespace cloze {
void register_image_aug(Napi::Env env, Napi::Object exports) { (void)env; (void)exports; }
}  // namespace cloze
