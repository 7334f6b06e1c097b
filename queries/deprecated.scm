; prefilter: DeprecationWarning FutureWarning deprecated
; warnings.warn(message, DeprecationWarning | PendingDeprecationWarning | FutureWarning, ...),
; the same with category=..., or with a warning instance as the message; warn(...) when
; the module imports it from warnings; and the PEP 702 decorator: @deprecated(...),
; @typing_extensions.deprecated(...), @warnings.deprecated(...) (called or not).

(call
  function: [
    (attribute
      object: (identifier) @module
      attribute: (identifier) @function)
    (identifier) @function @imported
  ]
  arguments: [
    (argument_list
      .
      (_)
      .
      (identifier) @category)
    (argument_list
      (keyword_argument
        name: (identifier) @keyword
        value: (identifier) @category))
    (argument_list
      .
      (call
        function: (identifier) @category))
  ]
  (#any-of? @function "warn" "warn_explicit")
  (#eq? @module "warnings")
  (#imports? @imported "warnings.warn")
  (#eq? @keyword "category")
  (#any-of? @category "DeprecationWarning" "PendingDeprecationWarning" "FutureWarning"))

(decorator
  [
    (identifier) @name
    (call
      function: (identifier) @name)
    (attribute
      object: (identifier) @module
      attribute: (identifier) @name)
    (call
      function: (attribute
        object: (identifier) @module
        attribute: (identifier) @name))
  ]
  (#eq? @name "deprecated")
  (#any-of? @module "typing_extensions" "warnings"))
