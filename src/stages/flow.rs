//! Evaluating a module body ([`crate::stages::scope::Stmt`]) for a target: which names are
//! bound on *every* path through the module (definite), which on some paths only (maybe),
//! what `__all__` holds, and which modules its imports load.
//!
//! Paths: the branches of an `if` whose condition is undecided, the handlers of a `try` (which
//! start from any prefix of its body), the bodies of loops (maybe zero times) and `match`
//! cases. A decided condition ([`Cond`] against the [`PythonTarget`]) keeps only its branch.
//! A `raise` ends its path: a module whose import fails there binds nothing there. Joining
//! paths keeps a name definite only when every live path binds it; `__all__` stays known only
//! when every live path agrees on it.
//!
//! Cross-module facts (the names a star import brings, another module's `__all__`, whether a
//! decorator is a registration decorator) come from a [`Resolver`], so the same evaluation
//! serves the cross-module `exports` query and the per-file `module_loads` query.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::PythonTarget;
use crate::stages::scope::{
    AllItem, AllOp, Binding, BindingKind, Cond, DecoratorRef, ImportOrigin, ModuleAllRef, ModuleScope, Stmt, TargetString,
    VersionPart,
};

/// The names a star import binds.
#[derive(Debug, Default)]
pub struct StarNames {
    pub definite: Vec<String>,
    pub maybe: Vec<String>,
    /// Why the star-imported module's names are not known (outside the repository, missing,
    /// or itself incomplete).
    pub unknown: Option<String>,
}

/// What another module's `__all__` is known to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtherAll {
    Known(Vec<String>),
    /// Known on each path, different across undecided paths (see [`AllState::Varies`]).
    Varies { guess: Vec<String>, must: BTreeSet<String>, may: BTreeSet<String> },
    /// The module binds no `__all__` (known for certain).
    Absent,
    Unknown,
}

/// Cross-module facts the evaluation asks for.
pub trait Resolver {
    /// The target's `(major, minor)`; read only when a condition needs it.
    fn python_version(&mut self) -> (u32, u32);
    /// The target's `sys.platform`; read only when a condition needs it.
    fn platform(&mut self) -> String;
    fn star(&mut self, module: &str) -> StarNames;
    fn module_all(&mut self, reference: &ModuleAllRef) -> OtherAll;
    /// `Some(true)`: a registration decorator; `Some(false)`: not one; `None`: cannot know.
    fn is_registrar(&mut self, decorator: &DecoratorRef, local_registrars: &BTreeSet<String>) -> Option<bool>;
}

/// `__all__` along one path (or joined paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllState {
    Absent,
    Known(Vec<String>),
    /// Known on each path, different across undecided paths: `must` holds the names of every
    /// path's list, `may` those of some; `guess` keeps an order for the record.
    Varies { guess: Vec<String>, must: BTreeSet<String>, may: BTreeSet<String> },
    /// Not statically known, and why; the best guess is kept for the record.
    Unknown { guess: Vec<String>, reason: String },
}

impl AllState {
    pub fn guess(&self) -> Vec<String> {
        match self {
            AllState::Absent => Vec::new(),
            AllState::Known(v) | AllState::Varies { guess: v, .. } | AllState::Unknown { guess: v, .. } => v.clone(),
        }
    }

    fn unknown(&self, reason: impl Into<String>) -> AllState {
        match self {
            AllState::Unknown { .. } => self.clone(),
            _ => AllState::Unknown { guess: self.guess(), reason: reason.into() },
        }
    }

    /// (names on every path, names on some path) of a known or varying `__all__`.
    fn bounds(&self) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
        match self {
            AllState::Known(v) => {
                let set: BTreeSet<String> = v.iter().cloned().collect();
                Some((set.clone(), set))
            }
            AllState::Varies { must, may, .. } => Some((must.clone(), may.clone())),
            _ => None,
        }
    }
}

/// The namespace along one path.
#[derive(Debug, Clone)]
pub struct State {
    /// Bound names: their binding and whether they are bound on every path.
    pub names: BTreeMap<String, (Binding, bool)>,
    /// Modules loaded (candidates, as written): whether on every path.
    pub loads: BTreeMap<String, bool>,
    pub all: AllState,
    /// The path ended in a `raise`.
    pub dead: bool,
}

impl Default for State {
    fn default() -> Self {
        State { names: BTreeMap::new(), loads: BTreeMap::new(), all: AllState::Absent, dead: false }
    }
}

/// The result of evaluating a module body.
#[derive(Debug)]
pub struct Outcome {
    pub state: State,
    /// Why the names a star import brings are unknown (empty: all known).
    pub unknown: BTreeSet<String>,
}

/// Evaluate `scope`'s body.
pub fn evaluate(scope: &ModuleScope, resolver: &mut dyn Resolver) -> Outcome {
    let mut evaluator = Evaluator { scope, resolver, unknown: BTreeSet::new(), trails: Vec::new() };
    let state = evaluator.block(&scope.body, State::default());
    Outcome { state, unknown: evaluator.unknown }
}

struct Evaluator<'a> {
    scope: &'a ModuleScope,
    resolver: &'a mut dyn Resolver,
    unknown: BTreeSet<String>,
    /// For each enclosing `try` body, the join of the states it reached so far.
    trails: Vec<State>,
}

impl Evaluator<'_> {
    fn block(&mut self, stmts: &[Stmt], mut state: State) -> State {
        for stmt in stmts {
            if state.dead {
                break;
            }
            state = self.stmt(stmt, state);
            self.observe(&state);
        }
        state
    }

    /// Inside `try` bodies, every state reached is one a handler may start from.
    fn observe(&mut self, state: &State) {
        if self.trails.is_empty() || state.dead {
            return;
        }
        for trail in &mut self.trails {
            let current = std::mem::take(trail);
            *trail = join(vec![current, state.clone()]);
        }
    }

    fn stmt(&mut self, stmt: &Stmt, mut state: State) -> State {
        match stmt {
            Stmt::Bind { name, binding, maybe } => bind(&mut state, name, binding.clone(), !maybe),
            Stmt::Delete(name) => {
                state.names.remove(name);
            }
            Stmt::Load(module) => {
                state.loads.insert(module.clone(), true);
            }
            Stmt::Star(module) => {
                let names = self.resolver.star(module);
                self.unknown.extend(names.unknown.clone());
                let binding = |name: &str| Binding {
                    kind: BindingKind::StarImport,
                    origin: Some(ImportOrigin { module: module.clone(), name: Some(name.to_string()) }),
                };
                for name in &names.definite {
                    bind(&mut state, name, binding(name), true);
                }
                for name in &names.maybe {
                    bind(&mut state, name, binding(name), false);
                }
            }
            Stmt::All(op) => self.all_op(&mut state, op),
            Stmt::Decorated { name, decorators } => {
                // Decorators apply from the innermost (last written) outwards.
                for decorator in decorators.iter().rev() {
                    match self.resolver.is_registrar(decorator, &self.scope.registrars) {
                        Some(true) => self.all_op(&mut state, &AllOp::Register(name.clone())),
                        Some(false) => {}
                        None => {
                            let reason = format!("decorator {} on {name} may add to __all__ and cannot be resolved", describe(decorator));
                            state.all = state.all.unknown(reason);
                        }
                    }
                }
            }
            Stmt::Call { function, args } => {
                let is_local_function =
                    state.names.get(function).is_some_and(|(b, _)| b.kind == BindingKind::Function && b.origin.is_none());
                if is_local_function && self.scope.registrars.contains(function) {
                    let reason = format!("registration decorator {function}() is called directly");
                    state.all = state.all.unknown(reason);
                }
                if is_local_function {
                    if let Some(&dedupe) = self.scope.all_helpers.get(function) {
                        let op = match args.first() {
                            Some(Some(reference)) => {
                                let items = vec![AllItem::ModuleAll(reference.clone())];
                                if dedupe { AllOp::ExtendUnique(items) } else { AllOp::Extend(items) }
                            }
                            _ => AllOp::Unknown,
                        };
                        self.all_op(&mut state, &op);
                    }
                    if let Some(globals) = self.scope.function_globals.get(function) {
                        for name in globals {
                            bind(&mut state, name, Binding { kind: BindingKind::Variable, origin: None }, false);
                        }
                    }
                }
            }
            Stmt::CallImported(callee) => {
                if self.resolver.is_registrar(callee, &self.scope.registrars) != Some(false) {
                    let reason = format!("registration decorator {} is called directly", describe(callee).trim_start_matches('@'));
                    state.all = state.all.unknown(reason);
                }
            }
            Stmt::If { branches, orelse } => {
                let mut outcomes = Vec::new();
                let mut rest = Some(state);
                for (cond, body) in branches {
                    let Some(current) = rest.take() else { break };
                    match self.decide(cond) {
                        Some(false) => rest = Some(current),
                        Some(true) => outcomes.push(self.block(body, current)),
                        None => {
                            outcomes.push(self.block(body, current.clone()));
                            rest = Some(current);
                        }
                    }
                }
                if let Some(current) = rest {
                    outcomes.push(match orelse {
                        Some(orelse) => self.block(orelse, current),
                        None => current,
                    });
                }
                state = join(outcomes);
            }
            Stmt::Try { body, handlers, orelse, finally } => {
                // A handler starts from any state the body reached before raising (any prefix of
                // any path): the join of them all, from the state before the body on.
                self.trails.push(state.clone());
                let after_body = self.block(body, state);
                let entry = self.trails.pop().expect("the trail pushed above");
                let mut outcomes = Vec::new();
                if !handlers.is_empty() {
                    for handler in handlers {
                        outcomes.push(self.block(handler, entry.clone()));
                    }
                }
                outcomes.insert(0, self.block(orelse, after_body));
                state = self.block(finally, join(outcomes));
            }
            Stmt::Loop { body, orelse, runs_once } => {
                let after = if *runs_once {
                    self.block(body, state)
                } else {
                    let once = self.block(body, state.clone());
                    join(vec![state, once])
                };
                // `else` runs unless a `break` left the loop: maybe.
                let with_else = self.block(orelse, after.clone());
                state = if orelse.is_empty() { after } else { join(vec![after, with_else]) };
            }
            Stmt::Match { cases, exhaustive } => {
                let mut outcomes: Vec<State> = cases.iter().map(|case| self.block(case, state.clone())).collect();
                if !exhaustive {
                    outcomes.push(state);
                }
                state = join(outcomes);
            }
            Stmt::Raise => state.dead = true,
        }
        state
    }

    fn all_op(&mut self, state: &mut State, op: &AllOp) {
        let current = std::mem::replace(&mut state.all, AllState::Absent);
        state.all = match op {
            AllOp::Unknown => current.unknown("__all__ is changed by a statement that is not a static idiom"),
            AllOp::Set(items) => match self.items(items) {
                Ok(value) => value,
                Err((guess, reason)) => AllState::Unknown { guess, reason },
            },
            AllOp::Register(name) => match current {
                AllState::Absent => AllState::Known(vec![name.clone()]),
                other => extend(other, vec![name.clone()], false),
            },
            AllOp::Extend(items) | AllOp::ExtendUnique(items) => match (&current, self.items(items)) {
                (AllState::Unknown { .. }, _) => current,
                // `__all__ += …` with no `__all__` raises NameError.
                (AllState::Absent, _) => current.unknown("__all__ is extended before it is assigned"),
                (_, Err((_, reason))) => current.unknown(reason),
                (_, Ok(AllState::Known(added))) => extend(current, added, matches!(op, AllOp::ExtendUnique(_))),
                (_, Ok(AllState::Varies { guess, must, may })) => {
                    let unique = matches!(op, AllOp::ExtendUnique(_));
                    let (current_must, current_may) = current.bounds().expect("a known or varying __all__");
                    let mut names = current.guess();
                    for name in guess {
                        if !unique || !names.contains(&name) {
                            names.push(name);
                        }
                    }
                    AllState::Varies {
                        guess: names,
                        must: current_must.union(&must).cloned().collect(),
                        may: current_may.union(&may).cloned().collect(),
                    }
                }
                (_, Ok(_)) => current.unknown("__all__ is extended with a value that is not known"),
            },
            AllOp::Remove(name) => {
                let present_everywhere = current.bounds().is_some_and(|(must, _)| must.contains(name));
                if !present_everywhere {
                    // `list.remove` of a missing item raises ValueError.
                    current.unknown(format!("__all__.remove({name:?}) of a name it may not hold"))
                } else {
                    match current {
                        AllState::Known(mut names) => {
                            let i = names.iter().position(|n| n == name).expect("present");
                            names.remove(i);
                            AllState::Known(names)
                        }
                        AllState::Varies { mut guess, mut must, mut may } => {
                            if let Some(i) = guess.iter().position(|n| n == name) {
                                guess.remove(i);
                            }
                            must.remove(name);
                            may.remove(name);
                            AllState::Varies { guess, must, may }
                        }
                        other => other,
                    }
                }
            }
        };
    }

    /// The value of `__all__` items: known, or varying when another module's `__all__` varies
    /// across paths; `Err((guess, reason))` when one is unknown.
    fn items(&mut self, items: &[AllItem]) -> Result<AllState, (Vec<String>, String)> {
        let mut guess = Vec::new();
        let mut must = BTreeSet::new();
        let mut may = BTreeSet::new();
        let mut varies = false;
        let mut failure = None;
        for item in items {
            match item {
                AllItem::Name(name) => {
                    guess.push(name.clone());
                    must.insert(name.clone());
                    may.insert(name.clone());
                }
                AllItem::ModuleAll(reference) => match self.resolver.module_all(reference) {
                    OtherAll::Known(all) => {
                        must.extend(all.iter().cloned());
                        may.extend(all.iter().cloned());
                        guess.extend(all);
                    }
                    OtherAll::Varies { guess: g, must: m, may: y } => {
                        varies = true;
                        guess.extend(g);
                        must.extend(m);
                        may.extend(y);
                    }
                    OtherAll::Absent => failure = Some(format!("{} has no __all__", describe_ref(reference))),
                    OtherAll::Unknown => failure = Some(format!("the __all__ of {} is not known", describe_ref(reference))),
                },
            }
        }
        match failure {
            Some(reason) => Err((guess, reason)),
            None if varies => Ok(AllState::Varies { guess, must, may }),
            None => Ok(AllState::Known(guess)),
        }
    }

    /// `Some(value)` when the condition is decided for the target.
    fn decide(&mut self, cond: &Cond) -> Option<bool> {
        match cond {
            Cond::Const(value) => Some(*value),
            Cond::Unknown => None,
            Cond::Not(inner) => self.decide(inner).map(|v| !v),
            Cond::And(parts) => {
                let mut result = Some(true);
                for part in parts {
                    match self.decide(part) {
                        Some(false) => return Some(false),
                        Some(true) => {}
                        None => result = None,
                    }
                }
                result
            }
            Cond::Or(parts) => {
                let mut result = Some(false);
                for part in parts {
                    match self.decide(part) {
                        Some(true) => return Some(true),
                        Some(false) => {}
                        None => result = None,
                    }
                }
                result
            }
            Cond::Version { part, op, value } => {
                let (major, minor) = self.resolver.python_version();
                version_holds((major as i64, minor as i64), *part, *op, value)
            }
            Cond::Str { of, prefix, starts_with, values, negated } => {
                let platform = self.resolver.platform();
                let subject = match of {
                    TargetString::OsName => PythonTarget { platform, ..PythonTarget::default() }.os_name().to_string(),
                    TargetString::Platform => platform,
                };
                let subject: String = match prefix {
                    Some(n) => subject.chars().take(*n).collect(),
                    None => subject,
                };
                let hit = values.iter().any(|v| if *starts_with { subject.starts_with(v.as_str()) } else { subject == *v });
                Some(hit != *negated)
            }
        }
    }
}

/// Decide a `sys.version_info` comparison for a target `(major, minor)` whose micro version,
/// release level and serial are unknown.
pub fn version_holds((major, minor): (i64, i64), part: VersionPart, op: crate::stages::scope::CmpOp, value: &[i64]) -> Option<bool> {
    use std::cmp::Ordering;
    let ordering = match part {
        VersionPart::Item(0) => major.cmp(value.first()?),
        VersionPart::Item(1) => minor.cmp(value.first()?),
        VersionPart::Item(_) => return None,
        VersionPart::Prefix(n) => {
            if n > 2 {
                return None;
            }
            let actual = &[major, minor][..n];
            actual.cmp(value)
        }
        VersionPart::Whole => {
            let n = value.len().min(2);
            match [major, minor][..n].cmp(&value[..n]) {
                Ordering::Equal => match value.len() {
                    // `version_info` is a 5-tuple: longer than the compared prefix, so greater.
                    0..=2 => Ordering::Greater,
                    // (3, 11, 0) is below every 3.11 release; (3, 11, 4) depends on the micro.
                    3 if value[2] == 0 => Ordering::Greater,
                    _ => return None,
                },
                other => other,
            }
        }
    };
    Some(op.holds(ordering))
}

/// Append `added` to a known or varying `__all__` (skipping present names when `unique`).
fn extend(current: AllState, added: Vec<String>, unique: bool) -> AllState {
    match current {
        AllState::Known(mut names) => {
            for name in added {
                if !unique || !names.contains(&name) {
                    names.push(name);
                }
            }
            AllState::Known(names)
        }
        AllState::Varies { mut guess, mut must, mut may } => {
            for name in added {
                if !unique || !guess.contains(&name) {
                    guess.push(name.clone());
                }
                must.insert(name.clone());
                may.insert(name);
            }
            AllState::Varies { guess, must, may }
        }
        other => other,
    }
}

fn describe_ref(reference: &ModuleAllRef) -> String {
    match &reference.attr {
        Some(attr) => format!("{}.{attr}", reference.module),
        None => reference.module.clone(),
    }
}

fn describe(decorator: &DecoratorRef) -> String {
    match decorator {
        DecoratorRef::Local(name) => format!("@{name}"),
        DecoratorRef::Imported { module, name } => format!("@{module}.{name}"),
        DecoratorRef::Other(name) => format!("@{name}"),
    }
}

fn bind(state: &mut State, name: &str, binding: Binding, definite: bool) {
    match state.names.get_mut(name) {
        // A rebinding that may not happen keeps the binding that surely did.
        Some((_, true)) if !definite => {}
        Some((existing, was_definite)) => {
            *existing = binding;
            *was_definite |= definite;
        }
        None => {
            state.names.insert(name.to_string(), (binding, definite));
        }
    }
}

/// Join the states of alternative paths (dead paths do not reach the join).
pub fn join(states: Vec<State>) -> State {
    let total = states.len();
    let mut live: Vec<State> = states.into_iter().filter(|s| !s.dead).collect();
    if live.is_empty() {
        return State { dead: total > 0, ..State::default() };
    }
    if live.len() == 1 {
        return live.pop().unwrap();
    }
    let count = live.len();
    let mut names: BTreeMap<String, (Binding, usize, bool)> = BTreeMap::new();
    let mut loads: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    for state in &live {
        for (name, (binding, definite)) in &state.names {
            let entry = names.entry(name.clone()).or_insert_with(|| (binding.clone(), 0, true));
            // The later path's binding wins (source order), as the last assignment would.
            entry.0 = binding.clone();
            entry.1 += 1;
            entry.2 &= *definite;
        }
        for (module, definite) in &state.loads {
            let entry = loads.entry(module.clone()).or_insert((0, true));
            entry.0 += 1;
            entry.1 &= *definite;
        }
    }
    let first_all = live[0].all.clone();
    let all = if live.iter().all(|s| s.all == first_all) {
        first_all
    } else {
        let mut guess = Vec::new();
        for state in &live {
            for name in state.all.guess() {
                if !guess.contains(&name) {
                    guess.push(name);
                }
            }
        }
        if let Some(AllState::Unknown { reason, .. }) = live.iter().map(|s| &s.all).find(|a| matches!(a, AllState::Unknown { .. })) {
            AllState::Unknown { guess, reason: reason.clone() }
        } else if live.iter().any(|s| s.all == AllState::Absent) {
            AllState::Unknown { guess, reason: "__all__ is assigned on some paths only".to_string() }
        } else {
            let bounds: Vec<(BTreeSet<String>, BTreeSet<String>)> = live.iter().filter_map(|s| s.all.bounds()).collect();
            let must = bounds.iter().skip(1).fold(bounds[0].0.clone(), |acc, (m, _)| acc.intersection(m).cloned().collect());
            let may = bounds.iter().flat_map(|(_, m)| m.iter().cloned()).collect();
            AllState::Varies { guess, must, may }
        }
    };
    State {
        names: names.into_iter().map(|(name, (binding, seen, definite))| (name, (binding, definite && seen == count))).collect(),
        loads: loads.into_iter().map(|(module, (seen, definite))| (module, definite && seen == count)).collect(),
        all,
        dead: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::scope::CmpOp;

    #[test]
    fn version_comparisons_follow_tuple_order() {
        let v311 = (3, 11);
        assert_eq!(version_holds(v311, VersionPart::Whole, CmpOp::Ge, &[3, 11]), Some(true));
        assert_eq!(version_holds(v311, VersionPart::Whole, CmpOp::Ge, &[3, 12]), Some(false));
        assert_eq!(version_holds(v311, VersionPart::Whole, CmpOp::Lt, &[3, 8]), Some(false));
        assert_eq!(version_holds(v311, VersionPart::Whole, CmpOp::Gt, &[3, 11]), Some(true), "5-tuple > 2-tuple prefix");
        assert_eq!(version_holds(v311, VersionPart::Whole, CmpOp::Eq, &[3, 11]), Some(false));
        assert_eq!(version_holds(v311, VersionPart::Whole, CmpOp::Lt, &[3,]), Some(false));
        assert_eq!(version_holds(v311, VersionPart::Whole, CmpOp::Ge, &[3, 11, 0]), Some(true));
        assert_eq!(version_holds(v311, VersionPart::Whole, CmpOp::Ge, &[3, 11, 2]), None, "micro unknown");
        assert_eq!(version_holds(v311, VersionPart::Whole, CmpOp::Ge, &[3, 10, 2]), Some(true));
        assert_eq!(version_holds(v311, VersionPart::Item(0), CmpOp::Eq, &[3]), Some(true));
        assert_eq!(version_holds(v311, VersionPart::Item(1), CmpOp::Lt, &[9]), Some(false));
        assert_eq!(version_holds(v311, VersionPart::Prefix(2), CmpOp::Eq, &[3, 11]), Some(true));
        assert_eq!(version_holds(v311, VersionPart::Prefix(2), CmpOp::Ge, &[3, 12]), Some(false));
        assert_eq!(version_holds(v311, VersionPart::Prefix(1), CmpOp::Eq, &[3]), Some(true));
    }
}
