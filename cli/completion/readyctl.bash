# bash completion for readyctl: commands, each command's options, file
# names where a command takes a file, and the fixed values of --format,
# --state and --verdict. Installed as bash-completion/completions/readyctl.

_readyctl() {
	local cur prev words cword
	_init_completion 2>/dev/null || {
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD-1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	}
	local commands="submit status report cancel runs gates history trends rejudge invalidate waive waivers unwaive spec run help"
	local global="--url --token --cacert --json --help --version"

	case $prev in
	--url|--token|--idempotency-key|--reason|--approver|--expires|--environment|--since|--until|--step|--limit|--cursor|--service|--timeout|--env|--target|--version)
		return ;;
	--cacert|--junit|--report|-o|--output)
		COMPREPLY=($(compgen -f -- "$cur")); return ;;
	--format)
		COMPREPLY=($(compgen -W "yaml json md html junit" -- "$cur")); return ;;
	--report-format)
		COMPREPLY=($(compgen -W "md html junit json" -- "$cur")); return ;;
	--state)
		COMPREPLY=($(compgen -W "queued running passed failed error cancelled interrupted" -- "$cur")); return ;;
	--verdict)
		COMPREPLY=($(compgen -W "PASS FAIL ERROR" -- "$cur")); return ;;
	esac

	local cmd="" i
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		--url|--token|--cacert) ((i++)) ;;
		-*) ;;
		*) cmd=${words[i]}; break ;;
		esac
	done
	if [ -z "$cmd" ]; then
		COMPREPLY=($(compgen -W "$commands $global" -- "$cur"))
		return
	fi
	local opts=""
	case $cmd in
	submit) opts="--wait --timeout --idempotency-key --format --junit --report --report-format" ;;
	status) opts="--wait --timeout" ;;
	report) opts="--format -o --output" ;;
	runs) opts="--service --state --limit --cursor" ;;
	history) opts="--environment --verdict --limit --cursor" ;;
	trends) opts="--environment --since --until --step --limit" ;;
	invalidate) opts="--reason" ;;
	waive) opts="--reason --approver --expires --environment" ;;
	spec)
		if [ "$i" -eq $((cword - 1)) ]; then
			COMPREPLY=($(compgen -W "put get diff" -- "$cur")); return
		fi
		opts="--version --format" ;;
	run) opts="--env --target --wait --timeout --idempotency-key --junit --report" ;;
	help) COMPREPLY=($(compgen -W "$commands" -- "$cur")); return ;;
	esac
	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "$opts $global" -- "$cur"))
	elif [ "$cmd" = submit ] || [ "$cmd" = spec ]; then
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -F _readyctl readyctl
