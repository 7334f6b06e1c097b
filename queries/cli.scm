; prefilter: argparse ArgumentParser click typer Typer
; A command-line interface: argparse.ArgumentParser(...) or a class derived from it
; (ArgumentParser alone when the module imports it from argparse), @click.command /
; @click.group (called or not), typer.Typer(...) (Typer(...) imported from typer).

(call
  function: [
    (attribute
      object: (identifier) @module
      attribute: (identifier) @class)
    (identifier) @class @imported
  ]
  (#eq? @class "ArgumentParser")
  (#eq? @module "argparse")
  (#imports? @imported "argparse.ArgumentParser"))

(class_definition
  superclasses: (argument_list
    [
      (attribute
        object: (identifier) @module
        attribute: (identifier) @class)
      (identifier) @class @imported
    ])
  (#eq? @class "ArgumentParser")
  (#eq? @module "argparse")
  (#imports? @imported "argparse.ArgumentParser"))

(decorator
  [
    (attribute
      object: (identifier) @module
      attribute: (identifier) @name)
    (call
      function: (attribute
        object: (identifier) @module
        attribute: (identifier) @name))
  ]
  (#eq? @module "click")
  (#any-of? @name "command" "group"))

(call
  function: [
    (attribute
      object: (identifier) @module
      attribute: (identifier) @class)
    (identifier) @class @imported
  ]
  (#eq? @class "Typer")
  (#eq? @module "typer")
  (#imports? @imported "typer.Typer"))
