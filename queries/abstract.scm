; prefilter: ABC abstract
; A class with an ABC / abc.ABC base or metaclass=ABCMeta / abc.ABCMeta, or a method
; decorated with @abstractmethod / @abc.abstractmethod (or the deprecated
; abstractproperty, abstractclassmethod, abstractstaticmethod).

(class_definition
  superclasses: (argument_list
    [
      (identifier) @base
      (attribute
        object: (identifier) @module
        attribute: (identifier) @base)
    ])
  (#eq? @base "ABC")
  (#eq? @module "abc"))

(class_definition
  superclasses: (argument_list
    (keyword_argument
      name: (identifier) @keyword
      value: [
        (identifier) @metaclass
        (attribute
          object: (identifier) @module
          attribute: (identifier) @metaclass)
      ]))
  (#eq? @keyword "metaclass")
  (#eq? @metaclass "ABCMeta")
  (#eq? @module "abc"))

(decorator
  [
    (identifier) @name
    (attribute
      object: (identifier) @module
      attribute: (identifier) @name)
  ]
  (#any-of? @name "abstractmethod" "abstractproperty" "abstractclassmethod" "abstractstaticmethod")
  (#eq? @module "abc"))
