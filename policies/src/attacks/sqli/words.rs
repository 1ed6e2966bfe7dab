//! The SQL words the detector knows: a static table (a `match` the compiler turns into comparisons), nothing built
//! at run time.

/// A word of SQL the judge cares about, or `Plain` for any other identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Word {
    /// Any identifier that is not in the table.
    Plain,
    // Logic and comparison words.
    And,
    Or,
    Xor,
    Not,
    Like,
    Is,
    In,
    Between,
    // Literals that make a condition true or false on their own.
    True,
    False,
    Null,
    // Statements and clauses.
    Union,
    Select,
    Insert,
    Update,
    Delete,
    Drop,
    Create,
    Alter,
    Truncate,
    Exec,
    Declare,
    Shutdown,
    Waitfor,
    Grant,
    Backup,
    Copy,
    Load,
    From,
    Where,
    Having,
    Order,
    Group,
    By,
    Limit,
    Into,
    Values,
    Set,
    All,
    Distinct,
    Exists,
    Procedure,
    Delay,
    Time,
    Data,
    Infile,
    Outfile,
    As,
    /// Object kinds after DROP/CREATE/ALTER/TRUNCATE (`table`, `database`, `view`...).
    ObjectKind,
    /// `identified`, the word after `create user name`.
    Identified,
    /// Time and error functions that only an attack calls from a request value (`benchmark`, `extractvalue`...).
    Danger,
    /// `sleep`: dangerous when called with a number, else a weaker signal.
    Sleep,
    /// Functions common in SQL (`char`, `concat`, `substring`, `version`...), a signal only in a SQL shape.
    Function,
    /// Words that name the current user, database or version without parentheses (`current_user`).
    Niladic,
    /// System tables and schemas (`information_schema`, `sysobjects`, `pg_shadow`...).
    SystemObject,
}

impl Word {
    /// Looks a lower-case word up.
    pub(super) fn of(w: &[u8]) -> Word {
        match w {
            b"and" => Word::And,
            b"or" => Word::Or,
            b"xor" => Word::Xor,
            b"not" => Word::Not,
            b"like" | b"rlike" | b"regexp" | b"glob" | b"sounds" => Word::Like,
            b"is" => Word::Is,
            b"in" => Word::In,
            b"between" => Word::Between,
            b"true" => Word::True,
            b"false" => Word::False,
            b"null" => Word::Null,
            b"union" => Word::Union,
            b"select" => Word::Select,
            b"insert" => Word::Insert,
            b"update" => Word::Update,
            b"delete" => Word::Delete,
            b"drop" => Word::Drop,
            b"create" => Word::Create,
            b"alter" => Word::Alter,
            b"truncate" => Word::Truncate,
            b"exec" | b"execute" => Word::Exec,
            b"declare" => Word::Declare,
            b"shutdown" => Word::Shutdown,
            b"waitfor" => Word::Waitfor,
            b"grant" | b"revoke" => Word::Grant,
            b"backup" => Word::Backup,
            b"copy" => Word::Copy,
            b"load" => Word::Load,
            b"from" => Word::From,
            b"where" => Word::Where,
            b"having" => Word::Having,
            b"order" => Word::Order,
            b"group" => Word::Group,
            b"by" => Word::By,
            b"limit" => Word::Limit,
            b"into" => Word::Into,
            b"values" => Word::Values,
            b"set" => Word::Set,
            b"all" => Word::All,
            b"distinct" | b"distinctrow" => Word::Distinct,
            b"exists" => Word::Exists,
            b"procedure" => Word::Procedure,
            b"delay" => Word::Delay,
            b"time" => Word::Time,
            b"data" => Word::Data,
            b"infile" => Word::Infile,
            b"outfile" | b"dumpfile" => Word::Outfile,
            b"as" => Word::As,
            b"table" | b"database" | b"view" | b"user" | b"login" | b"function" | b"index" | b"schema" | b"trigger" => {
                Word::ObjectKind
            }
            b"identified" => Word::Identified,
            b"benchmark"
            | b"pg_sleep"
            | b"extractvalue"
            | b"updatexml"
            | b"load_file"
            | b"xp_cmdshell"
            | b"xp_dirtree"
            | b"xp_regread"
            | b"sys_eval"
            | b"sys_exec"
            | b"name_const"
            | b"utl_inaddr"
            | b"utl_http"
            | b"dbms_pipe"
            | b"dbms_lock"
            | b"randomblob"
            | b"pg_read_file"
            | b"lo_import"
            | b"dbms_xmlgen"
            | b"ctxsys"
            | b"geometrycollection"
            | b"multipoint"
            | b"gtid_subset"
            | b"json_keys"
            | b"lo_get"
            | b"lo_export"
            | b"dbms_ldap"
            | b"dbms_java" => Word::Danger,
            b"sleep" => Word::Sleep,
            b"char" | b"chr" | b"nchar" | b"concat" | b"concat_ws" | b"group_concat" | b"string_agg" | b"substring"
            | b"substr" | b"mid" | b"ascii" | b"ord" | b"unicode" | b"version" | b"database_name" | b"db_name"
            | b"schema_name" | b"count" | b"cast" | b"convert" | b"md5" | b"sha1" | b"hex" | b"unhex" | b"if"
            | b"ifnull" | b"iif" | b"isnull" | b"nullif" | b"coalesce" | b"len" | b"length" | b"rand" | b"floor"
            | b"elt" | b"make_set" | b"instr" | b"locate" | b"left" | b"right" | b"lpad" | b"rpad" | b"reverse"
            | b"object_id" | b"object_name" | b"suser_name" | b"suser_sname" | b"host_name" | b"is_srvrolemember"
            | b"has_dbaccess" | b"sqlite_version" | b"current_database" | b"current_schema" | b"xmltype"
            | b"to_char" | b"sys_context" | b"bin" | b"conv" | b"decode" | b"row" | b"ceil" | b"ceiling"
            | b"last_insert_rowid" | b"found_rows" | b"connection_id" | b"row_count" | b"uuid" | b"exp"
            | b"current_setting" | b"pg_ls_dir" | b"version_number" => Word::Function,
            b"current_user" | b"session_user" | b"system_user" | b"user_name" => Word::Niladic,
            b"information_schema"
            | b"sysobjects"
            | b"syscolumns"
            | b"sysusers"
            | b"sysdatabases"
            | b"sysservers"
            | b"syslogins"
            | b"sysprocesses"
            | b"msysobjects"
            | b"msysaccessobjects"
            | b"pg_shadow"
            | b"pg_user"
            | b"pg_group"
            | b"pg_catalog"
            | b"pg_tables"
            | b"pg_database"
            | b"pg_namespace"
            | b"pg_proc"
            | b"sqlite_master"
            | b"sqlite_schema"
            | b"all_tables"
            | b"all_users"
            | b"all_tab_columns"
            | b"user_tables"
            | b"user_tab_columns"
            | b"dba_users"
            | b"dba_tables"
            | b"v$version"
            | b"v$instance" => Word::SystemObject,
            _ => Word::Plain,
        }
    }

    /// Whether the word joins two conditions (`and`, `or`, `xor`).
    pub(super) fn is_logic(self) -> bool {
        matches!(self, Word::And | Word::Or | Word::Xor)
    }

    /// Whether the word compares (`like`, `is`, `in`, `between`).
    pub(super) fn is_comparison(self) -> bool {
        matches!(self, Word::Like | Word::Is | Word::In | Word::Between)
    }

    /// Whether the word is a literal that is a condition on its own.
    pub(super) fn is_truth(self) -> bool {
        matches!(self, Word::True | Word::False | Word::Null)
    }

    /// Whether a function of this word, called, is SQL-shaped.
    pub(super) fn is_function(self) -> bool {
        matches!(self, Word::Function | Word::Danger | Word::Sleep | Word::Niladic) || matches!(self, Word::ObjectKind)
        // user(), database(), schema() are functions in MySQL
    }
}

/// Whether an identifier is a Microsoft SQL Server system procedure (`xp_...`, `sp_...`) or its `master` database.
pub(super) fn is_mssql_procedure(w: &[u8]) -> bool {
    w.starts_with(b"xp_") || w.starts_with(b"sp_") || w == b"master"
}

/// Whether an identifier is one of SQL Server's procedures and functions that only an attack names in a request:
/// extended procedures (`xp_cmdshell`, `xp_dirtree`...), dynamic SQL and OLE automation (`sp_executesql`,
/// `sp_oacreate`...), ad hoc remote queries (`openrowset`, `opendatasource`).
pub(super) fn is_mssql_attack_procedure(w: &[u8]) -> bool {
    (w.starts_with(b"xp_") && w.len() > 5)
        || matches!(
            w,
            b"sp_executesql"
                | b"sp_password"
                | b"sp_oacreate"
                | b"sp_oamethod"
                | b"sp_makewebtask"
                | b"sp_addlogin"
                | b"sp_addsrvrolemember"
                | b"sp_configure"
                | b"openrowset"
                | b"opendatasource"
        )
}

/// Whether an identifier names a SQL function, built in to MySQL, PostgreSQL, SQL Server, Oracle or SQLite: the
/// table of [`Word`] plus the common ones (`abs`, `trim`, `now`, `max`...) that are ordinary English words too, so
/// that only a shape no prose makes (the whole value a bare call, a call given a hex literal) counts them.
pub(super) fn is_sql_function(w: &[u8]) -> bool {
    Word::of(w).is_function()
        || matches!(
            w,
            b"abs"
                | b"pow"
                | b"power"
                | b"sin"
                | b"cos"
                | b"tan"
                | b"sqrt"
                | b"sign"
                | b"round"
                | b"trim"
                | b"ltrim"
                | b"rtrim"
                | b"replace"
                | b"upper"
                | b"lower"
                | b"ucase"
                | b"lcase"
                | b"now"
                | b"sysdate"
                | b"pi"
                | b"max"
                | b"min"
                | b"sum"
                | b"avg"
                | b"strcmp"
                | b"compress"
                | b"uncompress"
                | b"encode"
                | b"find_in_set"
                | b"json"
                | b"json_extract"
                | b"json_valid"
                | b"likelihood"
                | b"likely"
                | b"unlikely"
                | b"soundex"
                | b"date"
                | b"time"
                | b"year"
                | b"month"
                | b"day"
                | b"hour"
                | b"minute"
                | b"quarter"
                | b"format"
                | b"default"
                | b"log"
                | b"ln"
                | b"password"
                | b"values"
                | b"insert"
                | b"in"
                | b"exists"
                | b"glob"
                | b"printf"
                | b"quote"
                | b"zeroblob"
                | b"typeof"
                | b"sqlite_compileoption_used"
                | b"pg_read_binary_file"
                | b"query_to_xml"
                | b"datalength"
                | b"fn_varbintohexstr"
                | b"serverproperty"
        )
}
