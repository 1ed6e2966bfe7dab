//! The CEL parser: tokens to a syntax tree whose every node keeps its byte offset.
//!
//! Precedence climbing over CEL's levels: `||` < `&&` < relations (`== != < <= > >= in`, left-associative) <
//! unary `!` / `-` < member access, calls and indexing. Arithmetic and the conditional operator are recognised
//! only to be refused with a clear message.

use super::lexer::{tokenize, Tok, Token};
use super::ExprError;

/// Deepest nesting accepted, in parser recursion and in tree height: keeps the parser's stack and the compiled
/// condition (bounded by `bundle::MAX_CONDITION_DEPTH`) small.
pub(crate) const MAX_NESTING: u16 = 48;

/// A node of the syntax tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Byte offset where it starts in the expression text.
    pub start: usize,
    /// Height of the tree below it (a leaf is 0); bounded by [`MAX_NESTING`].
    pub height: u16,
}

/// `&&` or `||`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogicalOp {
    And,
    Or,
}

impl LogicalOp {
    /// The operator as written.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            LogicalOp::And => "&&",
            LogicalOp::Or => "||",
        }
    }
}

/// A relation operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RelOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

impl RelOp {
    /// The operator as written.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            RelOp::Eq => "==",
            RelOp::Ne => "!=",
            RelOp::Lt => "<",
            RelOp::Le => "<=",
            RelOp::Gt => ">",
            RelOp::Ge => ">=",
            RelOp::In => "in",
        }
    }
}

/// The kinds of syntax-tree nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ExprKind {
    Bool(bool),
    Int(i64),
    Str(String),
    /// A bare name, e.g. `request`.
    Ident(String),
    /// `target.field`.
    Member {
        target: Box<Expr>,
        field: String,
        field_start: usize,
    },
    /// `target[index]`.
    Index {
        target: Box<Expr>,
        index: Box<Expr>,
    },
    /// `name(args)` or `target.name(args)`.
    Call {
        target: Option<Box<Expr>>,
        name: String,
        name_start: usize,
        args: Vec<Expr>,
    },
    /// `!operand`.
    Not(Box<Expr>),
    /// A chain `a && b && c` (or `||`), two operands or more: associative, so compiled as a balanced tree.
    Logical {
        op: LogicalOp,
        operands: Vec<Expr>,
    },
    /// `lhs op rhs`.
    Relation {
        op: RelOp,
        op_start: usize,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
}

/// Parses a whole expression.
pub(crate) fn parse(text: &str) -> Result<Expr, ExprError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, pos: 0, depth: 0 };
    let expr = parser.expr()?;
    let next = parser.peek();
    match next.tok {
        Tok::Eof => Ok(expr),
        Tok::Question => Err(ExprError::new(next.start, "the conditional operator '?:' is not supported")),
        _ => Err(unexpected(next)),
    }
}

fn unexpected(token: &Token) -> ExprError {
    match token.tok {
        Tok::Eof => ExprError::new(token.start, "syntax error: unexpected end of expression"),
        Tok::Plus | Tok::Minus | Tok::Star | Tok::Slash | Tok::Percent => {
            ExprError::new(token.start, format!("arithmetic operator '{}' is not supported", token.tok.symbol()))
        }
        _ => ExprError::new(token.start, format!("syntax error: unexpected {}", token.tok.describe())),
    }
}

/// Parses one operand of a `&&` / `||` chain.
type Operand = fn(&mut Parser) -> Result<Expr, ExprError>;

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    // Current recursion depth, bounded by MAX_NESTING.
    depth: u16,
}

/// The token the parser sees past the end; `tokenize` always ends with one, this is only a fallback.
const EOF: Token = Token { tok: Tok::Eof, start: 0, end: 0 };

impl Parser {
    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).or_else(|| self.tokens.last()).unwrap_or(&EOF)
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn expect_tok(&mut self, tok: &Tok) -> Result<Token, ExprError> {
        let next = self.peek();
        if next.tok == *tok {
            return Ok(self.bump());
        }
        Err(ExprError::new(
            next.start,
            format!("syntax error: expected '{}' but found {}", tok.symbol(), next.tok.describe()),
        ))
    }

    /// The height of a node over `children`, refused when it would make the tree too tall.
    fn height(children: &[&Expr], at: usize) -> Result<u16, ExprError> {
        let height = children.iter().map(|c| c.height).max().unwrap_or(0) + 1;
        if height > MAX_NESTING {
            return Err(too_deep(at));
        }
        Ok(height)
    }

    fn enter(&mut self, at: usize) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(too_deep(at));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn expr(&mut self) -> Result<Expr, ExprError> {
        self.enter(self.peek().start)?;
        let expr = self.logical(LogicalOp::Or);
        self.leave();
        expr
    }

    /// A chain of `||` (of `&&` chains) or of `&&` (of relations).
    fn logical(&mut self, op: LogicalOp) -> Result<Expr, ExprError> {
        let (tok, operand): (Tok, Operand) = match op {
            LogicalOp::Or => (Tok::Or, |p| p.logical(LogicalOp::And)),
            LogicalOp::And => (Tok::And, Parser::relation),
        };
        let first = operand(self)?;
        if self.peek().tok != tok {
            return Ok(first);
        }
        let start = first.start;
        let mut operands = vec![first];
        let mut last_op = start;
        while self.peek().tok == tok {
            last_op = self.bump().start;
            operands.push(operand(self)?);
        }
        let height = Parser::height(&operands.iter().collect::<Vec<_>>(), last_op)?;
        Ok(Expr { kind: ExprKind::Logical { op, operands }, start, height })
    }

    fn relation(&mut self) -> Result<Expr, ExprError> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek().tok {
                Tok::Eq => RelOp::Eq,
                Tok::Ne => RelOp::Ne,
                Tok::Lt => RelOp::Lt,
                Tok::Le => RelOp::Le,
                Tok::Gt => RelOp::Gt,
                Tok::Ge => RelOp::Ge,
                Tok::In => RelOp::In,
                Tok::Plus | Tok::Minus | Tok::Star | Tok::Slash | Tok::Percent => return Err(unexpected(self.peek())),
                _ => return Ok(lhs),
            };
            let op_start = self.bump().start;
            let rhs = self.unary()?;
            let start = lhs.start;
            let height = Parser::height(&[&lhs, &rhs], op_start)?;
            let kind = ExprKind::Relation { op, op_start, lhs: Box::new(lhs), rhs: Box::new(rhs) };
            lhs = Expr { kind, start, height };
        }
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        let token = self.peek().clone();
        match token.tok {
            Tok::Not => {
                self.bump();
                self.enter(token.start)?;
                let operand = self.unary();
                self.leave();
                let operand = operand?;
                let height = Parser::height(&[&operand], token.start)?;
                Ok(Expr { kind: ExprKind::Not(Box::new(operand)), start: token.start, height })
            }
            Tok::Minus => {
                self.bump();
                let next = self.peek().clone();
                let Tok::Int(magnitude) = next.tok else {
                    return Err(ExprError::new(token.start, "unary '-' is only supported on integer literals"));
                };
                self.bump();
                let value = 0i64.checked_sub_unsigned(magnitude).ok_or_else(|| {
                    ExprError::new(token.start, "integer literal out of range (ints are 64-bit signed)")
                })?;
                self.postfix(Expr { kind: ExprKind::Int(value), start: token.start, height: 0 })
            }
            _ => {
                let primary = self.primary()?;
                self.postfix(primary)
            }
        }
    }

    fn postfix(&mut self, mut expr: Expr) -> Result<Expr, ExprError> {
        loop {
            let token = self.peek().clone();
            match token.tok {
                Tok::Dot => {
                    self.bump();
                    let name = self.bump();
                    let Tok::Ident(field) = name.tok else {
                        return Err(ExprError::new(
                            name.start,
                            format!("syntax error: expected a name after '.' but found {}", name.tok.describe()),
                        ));
                    };
                    let start = expr.start;
                    if self.peek().tok == Tok::LParen {
                        let args = self.args()?;
                        let mut children: Vec<&Expr> = args.iter().collect();
                        children.push(&expr);
                        let height = Parser::height(&children, name.start)?;
                        let kind =
                            ExprKind::Call { target: Some(Box::new(expr)), name: field, name_start: name.start, args };
                        expr = Expr { kind, start, height };
                    } else {
                        let height = Parser::height(&[&expr], name.start)?;
                        let kind = ExprKind::Member { target: Box::new(expr), field, field_start: name.start };
                        expr = Expr { kind, start, height };
                    }
                }
                Tok::LBracket => {
                    self.bump();
                    self.enter(token.start)?;
                    let index = self.expr();
                    self.leave();
                    let index = index?;
                    self.expect_tok(&Tok::RBracket)?;
                    let (start, height) = (expr.start, Parser::height(&[&expr, &index], token.start)?);
                    expr = Expr {
                        kind: ExprKind::Index { target: Box::new(expr), index: Box::new(index) },
                        start,
                        height,
                    };
                }
                _ => return Ok(expr),
            }
        }
    }

    /// `( arg, ... )`, at the opening parenthesis.
    fn args(&mut self) -> Result<Vec<Expr>, ExprError> {
        let open = self.expect_tok(&Tok::LParen)?;
        let mut args = Vec::new();
        if self.peek().tok == Tok::RParen {
            self.bump();
            return Ok(args);
        }
        self.enter(open.start)?;
        let parsed = self.arg_list(&mut args);
        self.leave();
        parsed?;
        Ok(args)
    }

    fn arg_list(&mut self, args: &mut Vec<Expr>) -> Result<(), ExprError> {
        loop {
            args.push(self.expr()?);
            let next = self.bump();
            match next.tok {
                Tok::Comma => {}
                Tok::RParen => return Ok(()),
                _ => {
                    return Err(ExprError::new(
                        next.start,
                        format!("syntax error: expected ',' or ')' but found {}", next.tok.describe()),
                    ));
                }
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let token = self.peek().clone();
        let leaf = |kind| Ok(Expr { kind, start: token.start, height: 0 });
        match token.tok {
            Tok::Int(magnitude) => {
                self.bump();
                let value = i64::try_from(magnitude).map_err(|_| {
                    ExprError::new(token.start, "integer literal out of range (ints are 64-bit signed)")
                })?;
                leaf(ExprKind::Int(value))
            }
            Tok::Str(ref s) => {
                self.bump();
                leaf(ExprKind::Str(s.clone()))
            }
            Tok::True => {
                self.bump();
                leaf(ExprKind::Bool(true))
            }
            Tok::False => {
                self.bump();
                leaf(ExprKind::Bool(false))
            }
            Tok::Null => Err(ExprError::new(token.start, "null is not supported")),
            Tok::Ident(ref name) => {
                self.bump();
                if self.peek().tok != Tok::LParen {
                    return leaf(ExprKind::Ident(name.clone()));
                }
                let args = self.args()?;
                let children: Vec<&Expr> = args.iter().collect();
                let height = Parser::height(&children, token.start)?;
                let kind = ExprKind::Call { target: None, name: name.clone(), name_start: token.start, args };
                Ok(Expr { kind, start: token.start, height })
            }
            Tok::LParen => {
                self.bump();
                let inner = self.expr()?;
                self.expect_tok(&Tok::RParen)?;
                Ok(inner)
            }
            Tok::LBracket => Err(ExprError::new(token.start, "list literals are not supported")),
            Tok::LBrace => Err(ExprError::new(token.start, "map literals are not supported")),
            Tok::Dot => Err(ExprError::new(token.start, "syntax error: unexpected '.'")),
            _ => Err(unexpected(&token)),
        }
    }
}

fn too_deep(at: usize) -> ExprError {
    ExprError::new(at, format!("expression nested too deeply (at most {MAX_NESTING} levels)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact rendering of the tree, to assert on shape and precedence.
    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::Int(i) => i.to_string(),
            ExprKind::Str(s) => format!("{s:?}"),
            ExprKind::Ident(n) => n.clone(),
            ExprKind::Member { target, field, .. } => format!("{}.{field}", show(target)),
            ExprKind::Index { target, index } => format!("{}[{}]", show(target), show(index)),
            ExprKind::Call { target, name, args, .. } => {
                let args: Vec<String> = args.iter().map(show).collect();
                match target {
                    Some(t) => format!("{}.{name}({})", show(t), args.join(", ")),
                    None => format!("{name}({})", args.join(", ")),
                }
            }
            ExprKind::Not(x) => format!("!{}", show(x)),
            ExprKind::Logical { op, operands } => {
                let parts: Vec<String> = operands.iter().map(show).collect();
                format!("({})", parts.join(&format!(" {} ", op.symbol())))
            }
            ExprKind::Relation { op, lhs, rhs, .. } => format!("({} {} {})", show(lhs), op.symbol(), show(rhs)),
        }
    }

    fn p(text: &str) -> String {
        show(&parse(text).unwrap())
    }

    fn err(text: &str) -> (usize, String) {
        let e = parse(text).unwrap_err();
        (e.offset, e.message)
    }

    #[test]
    fn precedence() {
        assert_eq!(p("a || b && c == d"), "(a || (b && (c == d)))");
        assert_eq!(p("!a && b"), "(!a && b)");
        assert_eq!(p("a && b && c || d"), "((a && b && c) || d)");
        assert_eq!(p("(a || b) && c"), "((a || b) && c)");
        assert_eq!(p("a == b == c"), "((a == b) == c)");
        assert_eq!(p("-5 < x"), "(-5 < x)");
        assert_eq!(p("-9223372036854775808 == x"), "(-9223372036854775808 == x)");
    }

    #[test]
    fn postfix_forms() {
        assert_eq!(p(r#"request.headers["X"].matches("a")"#), r#"request.headers["X"].matches("a")"#);
        assert_eq!(p("size(request.path) > 3"), "(size(request.path) > 3)");
        assert_eq!(p("request.path.size()"), "request.path.size()");
        assert_eq!(p(r#""k" in request.headers"#), r#"("k" in request.headers)"#);
    }

    #[test]
    fn positions() {
        let e = parse("a &&  b.c").unwrap();
        let ExprKind::Logical { operands, .. } = &e.kind else { panic!("{e:?}") };
        assert_eq!(operands[1].start, 6);
        let ExprKind::Member { field_start, .. } = &operands[1].kind else { panic!() };
        assert_eq!(*field_start, 8);
        let e = parse("x  == y").unwrap();
        let ExprKind::Relation { op_start, .. } = e.kind else { panic!() };
        assert_eq!(op_start, 3);
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(err("a &&"), (4, "syntax error: unexpected end of expression".into()));
        assert_eq!(err("(a || b"), (7, "syntax error: expected ')' but found end of expression".into()));
        assert_eq!(err("a b"), (2, "syntax error: unexpected identifier 'b'".into()));
        assert_eq!(err("f(a b)"), (4, "syntax error: expected ',' or ')' but found identifier 'b'".into()));
        assert_eq!(err("a.1"), (2, "syntax error: expected a name after '.' but found integer 1".into()));
        assert_eq!(err("x + 1 == 2"), (2, "arithmetic operator '+' is not supported".into()));
        assert_eq!(err("a ? b : c"), (2, "the conditional operator '?:' is not supported".into()));
        assert_eq!(err("-x"), (0, "unary '-' is only supported on integer literals".into()));
        assert_eq!(err("x == null").1, "null is not supported");
        assert_eq!(err("x in [1]"), (5, "list literals are not supported".into()));
        assert_eq!(err("9223372036854775808 == x").1, "integer literal out of range (ints are 64-bit signed)");
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = format!("{}a{}", "(".repeat(40), ")".repeat(40));
        assert_eq!(p(&ok), "a");
        let deep = format!("{}a{}", "(".repeat(200), ")".repeat(200));
        assert_eq!(err(&deep).1, "expression nested too deeply (at most 48 levels)");
        let nots = format!("{}a", "!".repeat(100_000));
        assert_eq!(err(&nots).1, "expression nested too deeply (at most 48 levels)");
        let sizes = format!("a{}", ".size()".repeat(100));
        assert_eq!(err(&sizes).1, "expression nested too deeply (at most 48 levels)");
        // A long flat chain is one node: fine for the parser (the emitter balances it).
        let chain = vec!["a"; 1000].join(" || ");
        assert!(parse(&chain).is_ok());
    }
}
