"""Log lines: text safe to write (text: escaped, cut, fields in the text) and budgets that
bound how many lines a flood can write (budget)."""
