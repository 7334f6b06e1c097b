; Imports: every import statement, plus the enclosing constructs that decide its flags.
; Captures come in document order; a stack of open containers gives each import its context.
(function_definition) @function
(if_statement) @if
(elif_clause) @elif
(else_clause) @else
(try_statement) @try
(except_clause) @except
(finally_clause) @finally
(for_statement) @loop
(while_statement) @loop
(case_clause) @case
(import_statement) @import
(import_from_statement) @import_from
(future_import_statement) @import_future
