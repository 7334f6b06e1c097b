; prefilter: exec eval
; Calls of the exec and eval builtins (not methods such as x.eval()).

(call
  function: [
    (identifier) @function
    (attribute
      object: (identifier) @module
      attribute: (identifier) @function)
  ]
  (#any-of? @function "exec" "eval")
  (#eq? @module "builtins"))

; Python 2's `exec code in namespace`
(exec_statement) @statement
