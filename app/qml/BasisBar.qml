import QtQuick
import QtQuick.Controls
import QtQuick.Layouts
import Circuitscope

// The basis the next trace attributes to (DESIGN §8): the transcoder's features, or the model's
// own MLP neurons. With neurons: the method (RelP or integrated gradients), an optional
// counterfactual prompt of as many tokens, and the metric's tokens (empty: the predictions).
RowLayout {
    id: bar

    required property ExplorerNeurons neurons
    readonly property bool neuronsOn: neurons.basis === "neurons"

    spacing: Theme.spacing

    Label {
        text: "Basis"
        color: Theme.textMuted
        font.pointSize: Theme.smallSize
    }
    ComboBox {
        objectName: "basisCombo"
        model: ["Transcoder features", "Neurons"]
        currentIndex: bar.neuronsOn ? 1 : 0
        onActivated: index => bar.neurons.basis = index === 1 ? "neurons" : "features"
        implicitContentWidthPolicy: ComboBox.WidestText
        ToolTip.visible: hovered
        ToolTip.text: "Trace to the transcoder's features, or to the model's own MLP neurons (no transcoder needed)"
    }
    ComboBox {
        objectName: "methodCombo"
        visible: bar.neuronsOn
        model: ["RelP", "Integrated gradients"]
        currentIndex: bar.neurons.method === "ig" ? 1 : 0
        onActivated: index => bar.neurons.method = index === 1 ? "ig" : "relp"
        implicitContentWidthPolicy: ComboBox.WidestText
    }
    TextField {
        objectName: "counterfactualField"
        visible: bar.neuronsOn
        Layout.fillWidth: true
        Layout.minimumWidth: 120
        text: bar.neurons.counterfactual
        placeholderText: "counterfactual prompt (as many tokens; optional)"
        selectByMouse: true
        onTextEdited: bar.neurons.counterfactual = text
    }
    TextField {
        objectName: "answerField"
        visible: bar.neuronsOn
        Layout.preferredWidth: 110
        text: bar.neurons.answer
        placeholderText: "answer (predicted)"
        selectByMouse: true
        onTextEdited: bar.neurons.answer = text
        ToolTip.visible: hovered
        ToolTip.text: "The metric's token as text, leading space included (\" Austin\"); empty: the model's prediction"
    }
    TextField {
        objectName: "counterfactualAnswerField"
        visible: bar.neuronsOn
        Layout.preferredWidth: 110
        text: bar.neurons.counterfactualAnswer
        placeholderText: "vs. (predicted)"
        selectByMouse: true
        onTextEdited: bar.neurons.counterfactualAnswer = text
        ToolTip.visible: hovered
        ToolTip.text: "With a counterfactual prompt: the metric is logit(answer) − logit(this); empty: the counterfactual prompt's prediction"
    }
    Item {
        visible: !bar.neuronsOn
        Layout.fillWidth: true
    }
}
