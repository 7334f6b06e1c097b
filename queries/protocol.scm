; prefilter: Protocol
; A class with a Protocol base: Protocol, typing.Protocol, typing_extensions.Protocol,
; Protocol[T] (and typing.Protocol[T]).

(class_definition
  superclasses: (argument_list
    [
      (identifier) @base
      (attribute
        object: (identifier) @module
        attribute: (identifier) @base)
      (subscript
        value: (identifier) @base)
      (subscript
        value: (attribute
          object: (identifier) @module
          attribute: (identifier) @base))
    ])
  (#eq? @base "Protocol")
  (#any-of? @module "typing" "typing_extensions"))
