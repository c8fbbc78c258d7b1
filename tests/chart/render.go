// render: renders a Helm chart as `helm template` does, with Go's text/template and Sprig (the
// engine Helm uses), without Helm or a cluster. Built offline from Debian's Go packages
// (GO111MODULE=off GOPATH=/usr/share/gocode).
//
//	render CHART [-n NAMESPACE] [-f VALUES.yaml]... [--set key.path=value]...
//
// Prints each rendered template as "---\n# Source: <chart>/templates/<file>\n<text>"; a
// template that calls `fail` (or any error) exits 1 with the message on stderr.
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	yaml2 "gopkg.in/yaml.v2"
	"gopkg.in/yaml.v3"
)

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "render: "+format+"\n", a...)
	os.Exit(1)
}

func readYAML(path string) map[string]interface{} {
	data, err := os.ReadFile(path)
	if err != nil {
		die("%v", err)
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		die("%s: %v", path, err)
	}
	return m
}

// merge overlays src on dst (maps merge key by key, anything else replaces), as Helm does.
func merge(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		sm, sok := v.(map[string]interface{})
		dm, dok := dst[k].(map[string]interface{})
		if sok && dok {
			dst[k] = merge(dm, sm)
		} else {
			dst[k] = v
		}
	}
	return dst
}

// setValue applies one --set a.b.c=v (scalars typed as Helm's strvals does: bools, ints).
func setValue(vals map[string]interface{}, arg string) {
	eq := strings.IndexByte(arg, '=')
	if eq <= 0 {
		die("--set %q: want key=value", arg)
	}
	var v interface{} = arg[eq+1:]
	if b, err := strconv.ParseBool(arg[eq+1:]); err == nil {
		v = b
	} else if n, err := strconv.ParseInt(arg[eq+1:], 10, 64); err == nil {
		v = n
	}
	keys := strings.Split(arg[:eq], ".")
	m := vals
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
}

func toYAML(v interface{}) string {
	data, err := yaml2.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func main() {
	if len(os.Args) < 2 {
		die("usage: render CHART [-n NAMESPACE] [-f VALUES]... [--set k=v]...")
	}
	chart := os.Args[1]
	meta := readYAML(filepath.Join(chart, "Chart.yaml"))
	vals := readYAML(filepath.Join(chart, "values.yaml"))
	namespace := "istio-system"
	for i := 2; i < len(os.Args); i++ {
		if i+1 >= len(os.Args) {
			die("%s needs an argument", os.Args[i])
		}
		switch os.Args[i] {
		case "-n":
			namespace = os.Args[i+1]
		case "-f":
			vals = merge(vals, readYAML(os.Args[i+1]))
		case "--set":
			setValue(vals, os.Args[i+1])
		default:
			die("unknown argument %q", os.Args[i])
		}
		i++
	}
	name, _ := meta["name"].(string)
	top := map[string]interface{}{
		"Values":  vals,
		"Release": map[string]interface{}{"Name": "ztunnel", "Namespace": namespace, "Service": "Helm", "IsInstall": true},
		"Chart": map[string]interface{}{"Name": name, "Version": fmt.Sprint(meta["version"]),
			"AppVersion": fmt.Sprint(meta["appVersion"])},
	}

	funcs := sprig.TxtFuncMap()
	delete(funcs, "env") // as Helm: templates do not read the renderer's environment
	delete(funcs, "expandenv")
	tpl := template.New(name).Option("missingkey=zero")
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		_ = yaml.Unmarshal([]byte(s), &m)
		return m
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, fmt.Errorf("%s", msg)
		}
		return v, nil
	}
	funcs["include"] = func(n string, data interface{}) (string, error) {
		var b bytes.Buffer
		err := tpl.ExecuteTemplate(&b, n, data)
		return b.String(), err
	}
	tpl.Funcs(funcs)

	files, _ := filepath.Glob(filepath.Join(chart, "templates", "*"))
	sort.Strings(files)
	var rendered []string
	for _, f := range files {
		base := filepath.Base(f)
		if base == "NOTES.txt" {
			continue
		}
		text, err := os.ReadFile(f)
		if err != nil {
			die("%v", err)
		}
		if _, err := tpl.New(name + "/templates/" + base).Parse(string(text)); err != nil {
			die("%v", err)
		}
		if !strings.HasPrefix(base, "_") {
			rendered = append(rendered, base)
		}
	}
	var out bytes.Buffer
	for _, base := range rendered {
		var b bytes.Buffer
		if err := tpl.ExecuteTemplate(&b, name+"/templates/"+base, top); err != nil {
			die("%v", err)
		}
		s := strings.ReplaceAll(b.String(), "<no value>", "")
		if strings.TrimSpace(s) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s/templates/%s\n%s\n", name, base, strings.TrimSpace(s))
	}
	os.Stdout.Write(out.Bytes())
}
