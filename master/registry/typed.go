package registry

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Adapters from typed functions to the runtime.Object signatures of Resource.

func defaulter[T runtime.Object](f func(T)) func(runtime.Object) {
	return func(obj runtime.Object) {
		if t, ok := obj.(T); ok {
			f(t)
		}
	}
}

func validator[T runtime.Object](f func(obj, old T) field.ErrorList) func(obj, old runtime.Object) field.ErrorList {
	return func(obj, old runtime.Object) field.ErrorList {
		t, ok := obj.(T)
		if !ok {
			return field.ErrorList{field.InternalError(nil, fmt.Errorf("expected %T, got %T", t, obj))}
		}
		var o T // nil pointer on create
		if old != nil {
			if o, ok = old.(T); !ok {
				return field.ErrorList{field.InternalError(nil, fmt.Errorf("expected old object %T, got %T", o, old))}
			}
		}
		return f(t, o)
	}
}

func fielder[T runtime.Object](f func(T) map[string]string) func(runtime.Object) map[string]string {
	return func(obj runtime.Object) map[string]string {
		if t, ok := obj.(T); ok {
			return f(t)
		}
		return nil
	}
}

func rower[T runtime.Object](f func(T, time.Time) []interface{}) func(runtime.Object, time.Time) []interface{} {
	return func(obj runtime.Object, now time.Time) []interface{} {
		if t, ok := obj.(T); ok {
			return f(t, now)
		}
		return nil
	}
}

func scaleGetter[T runtime.Object](f func(T) (int32, int32, string)) func(runtime.Object) (int32, int32, string) {
	return func(obj runtime.Object) (int32, int32, string) {
		if t, ok := obj.(T); ok {
			return f(t)
		}
		return 0, 0, ""
	}
}

func scaleSetter[T runtime.Object](f func(T, int32)) func(runtime.Object, int32) {
	return func(obj runtime.Object, replicas int32) {
		if t, ok := obj.(T); ok {
			f(t, replicas)
		}
	}
}
