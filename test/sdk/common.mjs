// Shared by the SDK scripts of test/t/020_sdk_clients.pl: argument parsing, a hard deadline, and the exit
// convention. A script only sends through its SDK and reports: exit 0 when the SDK reported no error, 1 when it
// did (printed on stderr), 2 on bad usage or when the SDK did not finish in time. The rows are checked in SQL
// by the TAP test, never here.

// The positional arguments named in `names`; exits 2 with a usage line when one is missing.
export function parseArgs(script, names) {
    const values = process.argv.slice(2);
    if (values.length < names.length || values.slice(0, names.length).some((value) => value === '')) {
        console.error(`usage: node ${script} ${names.join(' ')}`);
        process.exit(2);
    }
    return Object.fromEntries(names.map((name, index) => [name, values[index]]));
}

// Ends the process with exit code 2 if the script is still running after `seconds`: an SDK that retries or
// waits forever fails the test instead of hanging it.
export function deadline(seconds, what) {
    const timer = setTimeout(() => {
        console.error(`${what}: not finished after ${seconds} s`);
        process.exit(2);
    }, seconds * 1000);
    timer.unref();
}

export function basicAuthorization(writeKey) {
    return `Basic ${Buffer.from(`${writeKey}:`).toString('base64')}`;
}

// Prints the report (one JSON line on stdout, for the test's diagnostics) and exits 1 if there were errors.
export function finish(report, errors) {
    console.log(JSON.stringify(report));
    if (errors.length > 0) {
        for (const error of errors.slice(0, 20)) {
            console.error(error);
        }
        if (errors.length > 20) {
            console.error(`… and ${errors.length - 20} more errors`);
        }
        process.exit(1);
    }
    process.exit(0);
}
