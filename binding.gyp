{
  "variables": {
    "has_openblas%": "<!(node native/tools/has-openblas.cjs)"
  },
  "targets": [
    {
      "target_name": "cloze_cpu",
      "sources": [
        "native/src/addon.cc",
        "native/src/core/storage.cc",
        "native/src/core/threadpool.cc",
        "native/src/core/blas.cc",
        "native/src/ops/attention.cc",
        "native/src/ops/elementwise.cc",
        "native/src/ops/nn.cc",
        "native/src/ops/linear_ce.cc",
        "native/src/ops/optim.cc",
        "native/src/ops/mlm_mask.cc",
        "native/src/ops/geglu.cc",
        "native/src/ops/mim_tokens.cc",
        "native/src/ops/mim_loss.cc",
        "native/src/ops/image_aug.cc",
        "native/src/ops/conv.cc",
        "native/src/ops/batchnorm.cc",
        "native/src/ops/pool.cc",
        "native/src/ops/sparse_rulebook.cc",
        "native/src/ops/sparse_conv.cc",
        "native/src/ops/sparse_norm_pool.cc",
        "native/src/ops/layout.cc",
        "native/src/binding/tensor_object.cc",
        "native/src/binding/args.cc",
        "native/src/binding/bind_tensor.cc",
        "native/src/binding/bind_linalg.cc",
        "native/src/binding/bind_elementwise.cc",
        "native/src/binding/bind_nn.cc",
        "native/src/binding/bind_linear_ce.cc",
        "native/src/binding/bind_attention.cc",
        "native/src/binding/bind_optim.cc",
        "native/src/binding/bind_mlm_mask.cc",
        "native/src/binding/bind_geglu.cc",
        "native/src/binding/bind_mim_tokens.cc",
        "native/src/binding/bind_mim_loss.cc",
        "native/src/binding/bind_image_aug.cc",
        "native/src/binding/bind_conv.cc",
        "native/src/binding/bind_sparse.cc",
        "native/src/binding/bind_layout.cc",
        "native/src/binding/bind_bench.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions", "-O2"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-O2"],
      "cflags": ["-O3", "-Wall", "-march=native", "-fno-math-errno"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O3", "-Wall", "-march=native", "-fno-math-errno"],
      "libraries": ["-lpthread"],
      "conditions": [
        ["has_openblas==1", {
          "defines": ["CLOZE_HAVE_OPENBLAS"],
          "libraries": ["-lopenblas"]
        }]
      ]
    }
  ]
}
