; prefilter: import_module __import__
; Dynamic imports: importlib.import_module(...), import_module(...) bound by
; `from importlib import import_module`, __import__(...).

; importlib.import_module(...)
(call
  function: (attribute
    object: (identifier) @module
    attribute: (identifier) @function)
  (#eq? @module "importlib")
  (#eq? @function "import_module"))

; import_module(...), where the module imports that name from importlib
(call
  function: (identifier) @function
  (#eq? @function "import_module")
  (#imports? @function "importlib.import_module"))

; `from importlib import import_module as alias`: calls through the alias contain no
; prefilter word, so the aliased import itself is the evidence.
(import_from_statement
  module_name: (dotted_name) @module
  name: (aliased_import
    name: (dotted_name) @name)
  (#eq? @module "importlib")
  (#eq? @name "import_module"))

; __import__(...) and builtins.__import__(...)
(call
  function: [
    (identifier) @function
    (attribute
      object: (identifier) @module
      attribute: (identifier) @function)
  ]
  (#eq? @function "__import__")
  (#eq? @module "builtins"))
