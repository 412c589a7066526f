{
  "variables": {
    "has_openblas%": "<!(node native/tools/has-openblas.cjs)",
    "has_mpi%": "<!(node native/tools/has-mpi.cjs)",
    "march%": "<!(node native/tools/march.cjs)"
  },
  "targets": [
    {
      "target_name": "cloze_cpu",
      "sources": ["<!@(node native/tools/sources.cjs)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions", "-O2"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-O2"],
      "cflags": ["-O3", "-Wall", "-march=<(march)", "-fno-math-errno"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-O3", "-Wall", "-march=<(march)", "-fno-math-errno"],
      "libraries": ["-lpthread"],
      "conditions": [
        ["has_openblas==1", {
          "defines": ["CLOZE_HAVE_OPENBLAS"],
          "libraries": ["-lopenblas"]
        }],
        ["has_mpi==1", {
          "defines": ["CLOZE_HAVE_MPI"],
          "include_dirs": ["<!@(node native/tools/has-mpi.cjs --cflags)"],
          "libraries": ["<!@(node native/tools/has-mpi.cjs --libs)", "-ldl"]
        }]
      ]
    }
  ]
}
