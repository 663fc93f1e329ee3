# SPDX-License-Identifier: LGPL-2.1-or-later
# ipcbrokerctl.bash: bash completion for ipcbrokerctl, installed as
# share/bash-completion/completions/ipcbrokerctl.  The commands and their
# options come from the program itself ('ipcbrokerctl __complete ...' prints
# its command table), so this file never falls out of step with it.

_ipcbrokerctl() {
        local cur prev prog cmd i w kind=shm nargs=0
        local -a sock=()
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        prog=${COMP_WORDS[0]}

        # The command: the first word that is not an option (or the argument
        # of --socket); then --sem, --socket and how many arguments precede
        # the word being completed.
        for ((i = 1; i < COMP_CWORD; i++)); do
                w=${COMP_WORDS[i]}
                if [[ $w == --socket ]]; then
                        ((i++))
                        sock=(--socket "${COMP_WORDS[i]}")
                        continue
                fi
                [[ $w == --sem ]] && kind=sem
                [[ $w == -* ]] && continue
                if [[ -z $cmd ]]; then
                        cmd=$w
                else
                        ((nargs++))
                fi
        done

        if [[ $prev == --socket ]]; then
                COMPREPLY=($(compgen -f -- "$cur"))
                return
        fi
        if [[ -z $cmd ]]; then
                if [[ $cur == -* ]]; then
                        COMPREPLY=($(compgen -W "$("$prog" __complete global 2>/dev/null | tr -d =) -h -V" -- "$cur"))
                else
                        COMPREPLY=($(compgen -W "$("$prog" __complete commands 2>/dev/null)" -- "$cur"))
                fi
                return
        fi
        if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "$("$prog" __complete options "$cmd" 2>/dev/null | tr -d =)" -- "$cur"))
                return
        fi
        # Object names, from the broker, for the NAME that comes first.
        case $cmd in
        help) COMPREPLY=($(compgen -W "$("$prog" __complete commands 2>/dev/null)" -- "$cur")) ;;
        register) COMPREPLY=($(compgen -f -- "$cur")) ;;
        sem-*) kind=sem ;&
        stat | rm | cat | write | chmod | chown | freeze)
                if ((nargs == 0)); then
                        COMPREPLY=($(compgen -W "$("$prog" "${sock[@]}" __complete names $kind 2>/dev/null)" -- "$cur"))
                fi
                ;;
        esac
        return 0
}
complete -F _ipcbrokerctl ipcbrokerctl
