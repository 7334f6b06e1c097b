; prefilter: dataclass
; @dataclass, @dataclass(...), @dataclasses.dataclass, @dataclasses.dataclass(...)
; (and @pydantic.dataclasses.dataclass: any module path ending in `dataclasses`).

(decorator
  [
    (identifier) @name
    (call
      function: (identifier) @name)
    (attribute
      object: (_) @module
      attribute: (identifier) @name)
    (call
      function: (attribute
        object: (_) @module
        attribute: (identifier) @name))
  ]
  (#eq? @name "dataclass")
  (#match? @module "^([A-Za-z_][A-Za-z0-9_]*\\.)*dataclasses$"))
