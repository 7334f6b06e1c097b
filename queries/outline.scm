; Outline: every class and function definition, at any depth. Nesting (qualnames, methods)
; is recovered from the order of the captures: they come in document order.
(class_definition) @class
(function_definition) @function
